"""A listener's own history: importing Spotify's exports into Listens, and training their models."""
