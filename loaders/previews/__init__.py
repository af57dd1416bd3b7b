"""Previews of images: thumbnails, a static view and rendered planes, drawn in sandboxed workers
(:mod:`.render` in the worker, :mod:`.pool` around it, :mod:`.job` on the job queue)."""
