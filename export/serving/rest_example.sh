#!/usr/bin/env bash
# Serve everything under an export base with the official TF Serving image and query it over REST.
# Usage: export/serving/rest_example.sh [EXPORT_BASE] [MODEL_NAME] [IMAGE_FILE]
set -euo pipefail
base="$(cd "${1:-export}" && pwd)"
model="${2:-digits}"
image="${3:-}"

# models.config for every model under the base (latest version of each).
.venv/bin/python -c "import sys, tfptm; print(tfptm.export.write_models_config(sys.argv[1]))" "$base"
docker run -d --rm --name tfptm-serving -p 8501:8501 -p 8500:8500 -v "$base:/models" tensorflow/serving \
  --model_config_file=/models/models.config --model_config_file_poll_wait_seconds=60
trap 'docker stop tfptm-serving >/dev/null' EXIT
until curl -sf "http://localhost:8501/v1/models/$model" >/dev/null; do sleep 1; done
curl -s "http://localhost:8501/v1/models/$model/metadata" | head -40    # the signatures, as the server sees them

if [ -n "$image" ]; then  # encoded image bytes, decoded and resized inside the graph
  body="{\"signature_name\": \"image_bytes\", \"instances\": [{\"image_bytes\": {\"b64\": \"$(base64 -w0 "$image")\"}}]}"
else                      # text models: raw strings, tokenized inside the graph
  body='{"signature_name": "raw_text", "instances": [{"text": "a great film"}]}'
fi
curl -s -d "$body" "http://localhost:8501/v1/models/$model:predict"
