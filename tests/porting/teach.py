"""A PyTorch-style teaching script, written against `torch` and run on tinylm by renaming the imports.

A character language model: an LSTM, then one GPT block (causal self-attention, an MLP with
nn.GELU()), trained with CrossEntropyLoss, AdamW, a cosine schedule and gradient clipping, fed by a
Dataset/DataLoader. `python teach.py [steps]` trains it and prints the loss at the start and the end.
With the four import lines renamed back (tinylm -> torch) it runs on PyTorch unchanged.
"""
import math

import tinylm as torch
import tinylm.nn as nn
import tinylm.nn.functional as F
from tinylm.utils.data import DataLoader, Dataset

torch.manual_seed(1337)
text = "the cat sat on the mat. the dog sat on the log. " * 12
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for ch, i in stoi.items()}
vocab_size, block_size, n_embd, n_head = len(chars), 16, 32, 4
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)


class CharDataset(Dataset):
    def __len__(self):
        return len(data) - block_size

    def __getitem__(self, i):
        chunk = data[i:i + block_size + 1]
        return chunk[:-1], chunk[1:]


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(n_embd, dim=2)
        q = q.view(B, T, n_head, C // n_head).transpose(1, 2)
        k = k.view(B, T, n_head, C // n_head).transpose(1, 2)
        v = v.view(B, T, n_head, C // n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class LanguageModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.lstm = nn.LSTM(n_embd, n_embd, num_layers=1, batch_first=True)
        self.block = Block()
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        x, _ = self.lstm(self.wte(idx))
        logits = self.lm_head(self.ln_f(self.block(x)))
        loss = None
        if targets is not None:
            loss = nn.CrossEntropyLoss()(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -block_size:])
            probs = F.softmax(logits[:, -1, :], dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
        return idx


def main(steps=60):
    model = LanguageModel()
    loader = DataLoader(CharDataset(), batch_size=16, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    losses, step = [], 0
    model.train()
    while step < steps:
        for xb, yb in loader:
            logits, loss = model(xb, yb)
            # PyTorch's own layout for the same loss: classes on axis 1
            same = F.cross_entropy(logits.transpose(1, 2), yb)
            assert abs(same.item() - loss.item()) < 1e-4
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if step == steps:
                break
    model.eval()
    sample = model.generate(torch.zeros((1, 1), dtype=torch.long), 20)[0].tolist()
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss {first:.4f} -> {last:.4f}; lr {scheduler.get_last_lr()[0]:.2e}; "
          f"sample {''.join(itos[i] for i in sample)!r}")
    return first, last


if __name__ == "__main__":
    import sys
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
