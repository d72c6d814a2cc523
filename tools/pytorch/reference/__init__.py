"""FarSee-Net PyTorch reference (model, presets, safetensors I/O). See farsee_reference.py."""
