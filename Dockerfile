# One image, several commands (web, worker, beat, flower; see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH="/opt/venv/bin:$PATH" \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    DJANGO_READ_DOT_ENV_FILE=false
RUN pip install --no-cache-dir uv \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home conveyor
WORKDIR /app
COPY pyproject.toml uv.lock ./
# Bytecode compiled at install: every process of the image starts without compiling its imports.
RUN uv sync --locked --no-dev --compile-bytecode
COPY . .
# Static files are collected into the image under production settings (hashed names for whitenoise).
# Those settings refuse to load without real secrets, so the build uses throwaway ones, used for nothing
# else and gone with this layer's process.
RUN SECRET_KEY="$(python -c 'from django.core.management.utils import get_random_secret_key as k; print(k())')" \
    KEY_ENCRYPTION_KEYS="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    python manage.py collectstatic --noinput --settings=config.settings.production
USER conveyor
EXPOSE 8000
# A real server: gunicorn, DEBUG off (production settings). Put a TLS-terminating proxy in front.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-"]
