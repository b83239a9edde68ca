"""Test infrastructure that the test suite and the scripts share (not used by vecsim itself)."""
