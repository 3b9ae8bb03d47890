"""Model implementations: one module (or one folder per family) each, named by ``models/<key>.yaml``."""
