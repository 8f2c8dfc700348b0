"""Berth's Python client: push and pull images, and the registry API beneath them. Works with
any OCI registry; with Berth it sends large layers straight to S3 (docs/direct-upload.md).
See docs/client.md.

    from berth.client import RegistryClient, open_source, push

    registry = RegistryClient("127.0.0.1:5000")
    digest = push(open_source("oci:./layout:1.0"), registry.repository("team/app", push=True), "1.0")
"""

from berth.client.archive import ArchiveSource
from berth.client.auth import Credentials
from berth.client.blobs import BlobPusher
from berth.client.content import Content, FileRange
from berth.client.errors import AuthError, ClientError, RegistryError
from berth.client.layout import LayoutSource, LayoutWriter, OciArchiveSource
from berth.client.manifests import Descriptor, Manifest, Plan, walk
from berth.client.progress import Bars, Meter, Progress
from berth.client.pull import pull
from berth.client.push import push
from berth.client.reference import Reference, parse_reference
from berth.client.registry import PartListing, RegistryClient, Repository, UploadStart
from berth.client.remote import RegistrySource
from berth.client.resume import ResumeStore
from berth.client.saved import SavedImage
from berth.client.sources import Source, open_source

__all__ = [
    "ArchiveSource", "AuthError", "Bars", "BlobPusher", "ClientError", "Content", "Credentials", "Descriptor",
    "FileRange", "LayoutSource", "LayoutWriter", "Manifest", "Meter", "OciArchiveSource", "PartListing", "Plan",
    "Progress",
    "Reference", "RegistryClient", "RegistryError", "RegistrySource", "Repository", "ResumeStore", "SavedImage",
    "Source",
    "UploadStart", "open_source", "parse_reference", "pull", "push", "walk",
]
