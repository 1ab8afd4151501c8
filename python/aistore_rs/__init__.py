"""aistore-rs Python client: buckets, objects, ETL, and a PyTorch connector
(`aistore_rs.pytorch`)."""

from .client import Bucket, Client, Etl, Object
from .errors import AISError, BucketExists, BucketNotFound, ETLError, ETLExists, ETLNotFound, ObjectNotFound

__all__ = [
    "AISError",
    "Bucket",
    "BucketExists",
    "BucketNotFound",
    "Client",
    "ETLError",
    "ETLExists",
    "ETLNotFound",
    "Etl",
    "Object",
    "ObjectNotFound",
]
