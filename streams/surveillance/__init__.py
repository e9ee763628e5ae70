"""Syndromic surveillance (症状监测): syndrome classification of visits and early warning (DOMAIN.md §5–§6, issues #7–#8)."""
