"""The web application of the tutorial: Products, Orders and Operations pages, rendered on
the server (Jinja2) from the two services' APIs, called with the signed-in user's token."""
