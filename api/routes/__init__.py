"""One Powertools Router per group of routes; :mod:`api.handler` includes each of them."""
