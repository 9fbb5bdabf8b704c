"""The public names: every name tinylm exported before the core was split into rings stays.

The lists were taken from the package as it stood before the split (tinylm.__all__, and the
public attributes of tinylm.nn, tinylm.functional, tinylm.optim and Tensor); a name may be added,
never dropped.
"""
import tinylm
import tinylm.functional as F
import tinylm.nn as nn
import tinylm.optim as optim

TOP = """BPETokenizer CharTokenizer F Function GPT GPTConfig Generator GradcheckError PRESETS Tensor abs all allclose
amp any arange argmax argmin backend bool bool_ cat checkpoint chunk clamp concat cuda data enable_grad equal exp
flatten float16 float32 float64 from_numpy full full_like functional gather get_array_module gpu_available gradcheck
half histogram inference_mode int32 int64 is_grad_enabled linspace load log log_softmax long manual_seed masked_fill
matmul max mean min multinomial nn no_grad numel ones ones_like optim parse_device permute rand rand_like randint
randn randn_like reshape safetensors sample_next sampling save set_grad_enabled sigmoid softmax split sqrt squeeze
stack std sum sum_to tanh tensor tokenizers topk train transpose tril triu unbind unsqueeze var where zeros
zeros_like""".split()
MODULES = "Histogram OPS autograd model ops strict".split()
NN = """Block CausalSelfAttention Dropout Embedding F GELU Identity IncompatibleKeys KVCache LayerNorm Linear MLP Module
ModuleDict ModuleList MultiHeadAttention Parameter ReLU Sequential Tanh Tensor functional init utils""".split()
FUNCTIONAL = """Tensor cat causal_mask causal_self_attention concat cross_entropy dropout embedding gelu layer_norm linear
log_softmax masked_fill mse_loss one_hot relu scaled_dot_product_attention sigmoid softmax split stack tanh
where""".split()
OPTIM = "Adam AdamW CosineLR LRScheduler LambdaLR Optimizer RMSprop SGD clip_grad_norm_ cosine_lr lr_scheduler param_groups".split()
TENSOR = """T abs all any argmax argmin astype backward bool chunk clamp clip clone contiguous cpu data detach device dim
double dtype eq exp expand flatten float gather gelu grad grad_fn half indices int is_leaf item log log10 log_softmax
long masked_fill matmul max mean min name ndim nelement numel numpy permute pow relu requires_grad requires_grad_
reshape retain_grad shape sigmoid size softmax split sqrt squeeze std sum tanh to tolist topk transpose unbind
unsqueeze values var view zero_grad""".split()


def test_every_top_level_name_stays_exported():
    assert sorted(set(TOP) - set(tinylm.__all__)) == []
    assert [n for n in TOP + MODULES if not hasattr(tinylm, n)] == []


def test_nn_functional_and_optim_names_stay():
    assert [n for n in NN if not hasattr(nn, n)] == []
    assert [n for n in FUNCTIONAL if not hasattr(F, n)] == []
    assert [n for n in OPTIM if not hasattr(optim, n)] == []


def test_tensor_methods_stay():
    assert [n for n in TENSOR if not hasattr(tinylm.Tensor, n)] == []
