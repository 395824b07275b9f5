"""Where the package's data (urdf/, config/, launch/, data/) is, in a source tree or installed."""
import functools
import pathlib

PACKAGE = 'exo_gait'


@functools.lru_cache(maxsize=1)
def share_dir() -> pathlib.Path:
    """The folder holding urdf/, config/, launch/ and data/.

    A source checkout (or an editable install) wins; otherwise the ament share directory
    that `colcon build` or a pip install created.

    Raises:
        FileNotFoundError: neither exists.
    """
    source_root = pathlib.Path(__file__).resolve().parents[1]
    if (source_root / 'package.xml').is_file() and (source_root / 'config').is_dir():
        return source_root
    try:
        from ament_index_python.packages import get_package_share_directory
        return pathlib.Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # PackageNotFoundError, or ament_index_python missing
        raise FileNotFoundError(
            f'cannot find the {PACKAGE} share directory (no source tree at {source_root} and '
            f'no ament index entry): {exc}') from exc


def share_path(*parts: str) -> pathlib.Path:
    """A path below the share directory, e.g. share_path('config', 'safety_supervisor.yaml')."""
    return share_dir().joinpath(*parts)


def config_path(node_name: str) -> pathlib.Path:
    """The default parameter file of a node: config/<node_name>.yaml."""
    return share_path('config', f'{node_name}.yaml')
