"""What reads the stored data: HTML reports (``reports/``), the audit trail, and the upload monitor that judges
ClickHouse's quality tables. Above the sinks whose tables it reads."""
