"""Assets of the `tiktok` group: the raw snapshot and what is derived from it."""
