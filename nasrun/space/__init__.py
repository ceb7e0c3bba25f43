"""Search spaces: parameters, conditions and the built-in architecture spaces."""
from .builtin import BUILTIN_OPTIONS, NB201_EDGES, NB201_OPS, builtin_params, nb201_arch_str, nb201_config
from .params import Categorical, Float, Integer, Param, SearchSpace, param_from_dict

__all__ = ["BUILTIN_OPTIONS", "Categorical", "Float", "Integer", "NB201_EDGES", "NB201_OPS", "Param",
           "SearchSpace", "builtin_params", "nb201_arch_str", "nb201_config", "param_from_dict"]
