"""OME-Zarr (NGFF) for the archive's images: virtual stores that reference a tiled TIFF's bytes, converted stores
written chunk by chunk, uploaded ``.ome.zarr.zip`` unpacked; the ``ome_zarr`` job that makes them
(:mod:`.job`) and what the API serves from them (:mod:`.served`)."""
