"""Who is asking and what they may do: users, grants, CI tokens, Docker registry tokens."""
