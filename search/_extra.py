"""The search service is an extra of the package (`pip install .` gives the optimizers, models
and trainer): imported first by ``search``, it turns a missing dependency into one line that
says what to install, where an import deep inside the package would give a traceback."""

import importlib.util

for _module in ("optuna", "sqlalchemy", "ray"):
    if importlib.util.find_spec(_module) is None:
        raise ModuleNotFoundError(
            f"the search service needs the [search] extra, which is not installed (no module "
            f"{_module!r}): pip install 'spherical-bn[search]' (in a checkout: pip install -e "
            "'.[search]')",
            name=_module,
        )
