"""Syndromic surveillance (症状监测): syndrome classification of visits and early warning (docs/domain.md §5–§6, issues #7–#8)."""
