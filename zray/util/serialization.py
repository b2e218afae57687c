"""Custom serializers for classes that cannot be pickled as they are (Ray's
``ray.util.register_serializer``).

A registration lives in this process's pickler, so it applies to what this process sends: the
values it puts, the arguments it passes and the results it returns. The deserializer travels
with each value (pickled by value when it is defined in ``__main__`` or a closure), so the
processes that read the value need no registration of their own, as in Ray.
"""

from __future__ import annotations

import cloudpickle


def register_serializer(cls: type, *, serializer: callable, deserializer: callable):
    """Use the given serializer to serialize instances of type ``cls``,
    and use the deserializer to deserialize the serialized object.

    Args:
        cls: A Python class/type.
        serializer: A function that converts an instance of type ``cls`` into a
            serializable object (e.g. a dict of basic objects).
        deserializer: A function that constructs the instance of type ``cls`` from the
            serialized object. This function itself must be serializable.
    """

    def reduce(obj):
        return deserializer, (serializer(obj),)

    # Builtin scalars and containers never consult the table (the pickler writes them
    # itself), in Ray as here.
    cloudpickle.CloudPickler.dispatch_table[cls] = reduce


def deregister_serializer(cls: type):
    """Deregister the serializer associated with the type ``cls``.
    There is no effect if the serializer is unavailable.

    Args:
        cls: A Python class/type.
    """
    cloudpickle.CloudPickler.dispatch_table.maps[0].pop(cls, None)


__all__ = ["register_serializer", "deregister_serializer"]
