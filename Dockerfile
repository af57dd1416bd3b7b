# The catalog with its embedded stores: `docker run -p 5000:5000 -v bia-data:/data IMAGE`.
FROM python:3.11-slim

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY schema ./schema
COPY shapes ./shapes
COPY catalog ./catalog
COPY loaders ./loaders
COPY linkers ./linkers
COPY api ./api
RUN pip install --no-cache-dir . && rm -rf /app/build

ENV BIA_DATA=/data \
    BIA_BASE_URL=http://localhost:5000
VOLUME ["/data"]
EXPOSE 5000
CMD ["bia", "serve", "--host", "0.0.0.0", "--port", "5000"]
