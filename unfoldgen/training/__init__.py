"""Training and evaluation of the generated networks (on top of the compiler; imports downwards)."""
