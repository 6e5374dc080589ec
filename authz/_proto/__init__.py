"""Generated protobuf/gRPC code: run ``python proto/generate.py``; do not edit."""
