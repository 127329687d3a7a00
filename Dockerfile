# The ShipML app itself (model images are generated per model version, not from this file).
# BASE_IMAGE lets machines without Docker Hub use a locally built Python base.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Extra CA certificates (docker/certs/*.crt, empty by default) for builds behind a
# TLS-intercepting proxy; pip uses its own CA bundle unless pointed at the system one.
COPY docker/certs/ /usr/local/share/ca-certificates/shipml/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# libgomp1: LightGBM's OpenMP runtime (python:3.11-slim lacks it; a debootstrap base may have it).
RUN if ! ldconfig -p | grep -q 'libgomp\.so\.1'; then \
      apt-get update \
      && apt-get install -y --no-install-recommends libgomp1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    SHIPML_WORKSPACE=/workspace

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

COPY .streamlit .streamlit
COPY app.py ./
COPY core core
COPY pages pages
COPY data/samples data/samples

RUN useradd --uid 10001 --no-create-home shipml && mkdir /workspace && chown shipml /workspace
USER shipml
VOLUME /workspace
EXPOSE 8501
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=2)"
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
