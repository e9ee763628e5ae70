"""Collaboration routing (协同路由): which programmes a validated event goes to (docs/domain.md §4, issue #6)."""
