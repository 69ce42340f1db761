"""HTTP routes, one thin module per area."""
