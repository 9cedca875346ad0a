"""Bearer-token authentication of the HTTP APIs (OAuth 2.0 access tokens as JWTs, RFC 9068)."""
