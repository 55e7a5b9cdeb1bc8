"""One step of self-attention (loss and gradients), symgrad kernel vs torch eager nn.MultiheadAttention: python bench/attention.py HEADS (run with OMP_NUM_THREADS=1)."""
import time, numpy as np, torch, symgrad as sg
from symgrad.graph.attention import from_torch_mha
torch.set_num_threads(1)
import sys; T, E, H, n = 64, 128, int(sys.argv[1]), 32
for causal in (False, True):
    net = sg.Network(); x = net.input('x', shape=(T, E))
    o = net.self_attention(x, H, causal=causal); net.set_loss(o, 'mse')
    t0=time.perf_counter(); kern = net.compile(); tc=time.perf_counter()-t0
    mha = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float32)
    P = from_torch_mha(net, o, *(t.detach().numpy().copy() for t in (mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias)))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, T, E)).astype(np.float32); Y = rng.normal(size=(n, T, E)).astype(np.float32)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    def tstep():
        mha.zero_grad()
        out,_ = mha(Xt, Xt, Xt, need_weights=False, attn_mask=mask)
        l = ((out-Yt)**2).sum()/(2*n*T); l.backward(); return l
    def best(f, k=15):
        f(); ts=[]
        for _ in range(k):
            t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
        return min(ts)
    ts = best(lambda: kern(P, X, Y)); tt = best(tstep)
    l, g = kern(P, X, Y)
    print(f"causal={causal} compile {tc:.2f}s  symgrad {ts*1e3:.1f} ms  torch eager {tt*1e3:.1f} ms  ratio {ts/tt:.2f}  loss diff {abs(l-tstep().item())/l:.1e}")
