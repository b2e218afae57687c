"""zray.experimental: Ray's experimental APIs that zray has (`tqdm_ray`)."""
