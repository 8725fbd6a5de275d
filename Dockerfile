# The engine's image: a server by default; the worker with
# `python -m workflow_engine.worker`. docker-compose.yml runs a cluster of both.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
COPY definitions ./definitions
COPY data ./data
COPY run_server.py ./
EXPOSE 5000
CMD ["python", "run_server.py", "--host", "0.0.0.0", "--port", "5000"]
