"""The feature store: feature views, Redis online store, Parquet/CSV offline store.

The router imports ``sluice.feature_store.backends.RedisOnlineStore`` in process; the
trainer imports ``sluice.feature_store.offline.OfflineStore``.
"""
