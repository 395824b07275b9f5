"""Import a script from tools/ or bench/ (not packages) in tests."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLS = ROOT / 'tools'


def load_tool(name: str, folder: pathlib.Path = TOOLS):
    spec = importlib.util.spec_from_file_location(name, folder / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_bench(name: str):
    return load_tool(name, ROOT / 'bench')
