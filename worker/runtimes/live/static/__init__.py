"""Static files of the live page (a package so that installs carry them)."""
