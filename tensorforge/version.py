"""The package version (its own module so that runtime/ can stamp engines without importing the package root)."""
__version__ = "0.1.0"
