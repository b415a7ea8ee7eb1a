"""Jobs: the daily close and `arus verify`."""
