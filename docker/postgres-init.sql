-- Each service owns its database.
CREATE DATABASE ordering;
CREATE DATABASE catalog;
