# Leadline server image. Models ship inside the Python wheels, so the image needs no download
# at run time (HF_HUB_OFFLINE makes sure nothing tries).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY runtime ./runtime
COPY bots ./bots
COPY telephony ./telephony
COPY loadtests ./loadtests
COPY analytics ./analytics
COPY emulators ./emulators
RUN python -m venv /opt/leadline \
 && /opt/leadline/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/leadline/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 leadline
COPY --from=build /opt/leadline /opt/leadline
ENV PATH=/opt/leadline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    LEADLINE_HOST=0.0.0.0 \
    LEADLINE_PORT=8080 \
    LEADLINE_DATA_DIR=/home/leadline/data
USER leadline
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
CMD ["leadline", "serve"]
