"""The package's version, in a base module so that any layer can record it without importing
the package's ``__init__`` (which imports the pandas face).

>>> __version__
'0.1.0'
"""

__version__ = "0.1.0"
