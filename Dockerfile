# The catalog served by gunicorn (api/gunicorn_conf.py) from its embedded stores on /data, as user bia (10001):
#   docker build -t bia-catalog .
#   docker run -p 5000:5000 -v bia-data:/data -e BIA_BASE_URL=https://bia.example.org bia-catalog
# BIA_BASE_URL is required (the server refuses to start without it): every IRI the catalog mints is under it.
# Tokens: docker exec CONTAINER bia token create NAME (list, revoke likewise).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 10001 bia \
 && useradd --uid 10001 --gid bia --create-home --shell /usr/sbin/nologin bia \
 && mkdir /data \
 && chown bia:bia /data

WORKDIR /app
# The dependencies pinned in setup.cfg, in a layer of their own: a change to the code does not reinstall them. The
# `postgres` extra is included (a site on several machines keeps its state in PostgreSQL: BIA_DATABASE_URL), and the
# `images` and `images-vendor` extras (the image header readers, CZI/ND2/LIF included).
COPY setup.cfg pyproject.toml ./
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); print(c['options']['install_requires'] + c['options.extras_require']['postgres'] + c['options.extras_require']['images'] + c['options.extras_require']['images-vendor'])" > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY README.md ./
COPY schema ./schema
COPY shapes ./shapes
COPY catalog ./catalog
COPY loaders ./loaders
COPY linkers ./linkers
COPY api ./api
RUN pip install --no-cache-dir --no-deps . \
 && rm -rf /app/build

USER 10001:10001
ENV BIA_DATA=/data
VOLUME ["/data"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
CMD ["gunicorn", "--config", "python:api.gunicorn_conf", "api.app:create_app()"]
