"""The pure core: no I/O, no clock reads, no environment reads. `now` is always an argument."""
