"""Data quality (上传数据质控): rule sets, the rule engine, the quality stage, scores, monitoring, reports."""
