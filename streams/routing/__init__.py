"""Collaboration routing (协同路由): which programmes a validated event goes to (DOMAIN.md §4, issue #6)."""
