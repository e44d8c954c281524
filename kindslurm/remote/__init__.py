"""Remote mode: what a laptop does against a login node beyond what the
transport and the records source give every command (README: From your laptop)."""
