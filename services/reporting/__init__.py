"""Statistics for provinces and the ministry, derived only from the other services' event feeds."""
