# The image of compose.yaml's healthbus services (`build: .`): the project without its dev extras, on a slim
# Python base, run as an unprivileged user. Each service names its command (`healthbus worker identify`, …).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin healthbus

WORKDIR /opt/healthbus
# Only what the installed package is built from: no tests, docs or local state (.dockerignore).
COPY pyproject.toml README.md ./
COPY avro_schemas ./avro_schemas
COPY foundation ./foundation
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
COPY read_side ./read_side
COPY synthetic ./synthetic
COPY ops ./ops
RUN pip install . && rm -rf /root/.cache

USER healthbus
WORKDIR /home/healthbus
ENV HEALTHBUS_PROFILE=production \
    HEALTHBUS_STATE_DIR=/home/healthbus/state
CMD ["healthbus", "--help"]
