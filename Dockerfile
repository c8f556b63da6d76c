# The registry (`stardag serve`, the server extra) and the GUI (`stardag gui`, the gui extra)
# from the locked dependencies; one image for both services. The native window is not here:
# a container has no display.
FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY stardag_core stardag_core
COPY stardag_graphql stardag_graphql
COPY stardag_gui stardag_gui
RUN uv sync --locked --no-dev --extra server --extra gui --compile-bytecode
ENV PATH=/app/.venv/bin:$PATH
CMD ["stardag", "serve", "--host", "127.0.0.1", "--port", "8000"]
