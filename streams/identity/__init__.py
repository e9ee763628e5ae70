"""Identity resolution (EMPI): normalise what institutions record about a person, then match."""
