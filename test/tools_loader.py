"""Import a script from tools/ (not a package) in tests."""
import importlib.util
import pathlib

TOOLS = pathlib.Path(__file__).resolve().parents[1] / 'tools'


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
