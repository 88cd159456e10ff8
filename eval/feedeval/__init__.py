"""Offline evaluation of feed-server on the KuaiRand logs (see eval/README.md)."""
