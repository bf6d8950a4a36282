"""The demo model's tasks: input generators and exact answers.

Every generator draws only through rng.randint(lo, hi) (both ends inclusive), so the same definitions run on
Python's random.Random (training data, fast) and on Mulberry32 below (evaluation sets, which
test/e2e/demo-model.test.ts regenerates bit-for-bit in TypeScript).

Prompt format (one sequence):  <s> INPUT = ANSWER </s>
"""

LOWER = "abcdefghijklmnopqrstuvwxyz"
UPPER = LOWER.upper()
DIGITS = "0123456789"
PUNCT = " .,!?-+*/:;'()"
ECHO_ALPHABET = LOWER + UPPER + DIGITS + PUNCT
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SEPARATOR = "="


class Mulberry32:
    """A 32-bit PRNG that TypeScript reproduces exactly (test/e2e/demo-model.test.ts)."""

    def __init__(self, seed: int):
        self.state = seed & 0xFFFFFFFF

    def next_u32(self) -> int:
        self.state = (self.state + 0x6D2B79F5) & 0xFFFFFFFF
        t = self.state
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        return (t ^ (t >> 14)) & 0xFFFFFFFF

    def randint(self, lo: int, hi: int) -> int:
        return lo + (self.next_u32() * (hi - lo + 1)) // 4294967296


def pick(rng, alphabet: str) -> str:
    return alphabet[rng.randint(0, len(alphabet) - 1)]


def words(rng, min_words: int, max_words: int, max_word_len: int) -> str:
    n = rng.randint(min_words, max_words)
    return " ".join("".join(pick(rng, LOWER) for _ in range(rng.randint(1, max_word_len))) for _ in range(n))


def digit_string(rng, max_len: int) -> str:
    return "".join(pick(rng, DIGITS) for _ in range(rng.randint(1, max_len)))


def number(rng, max_digits: int) -> int:
    return rng.randint(0, 10 ** rng.randint(1, max_digits) - 1)


def echo_input(rng) -> str:
    kind = rng.randint(0, 3)
    if kind == 0:
        return "".join(pick(rng, ECHO_ALPHABET) for _ in range(rng.randint(1, 20)))
    if kind == 1:
        return words(rng, 1, 3, 6)
    if kind == 2:
        return digit_string(rng, 8)
    return f"{number(rng, 3)}+{number(rng, 3)}"


def caesar3(text: str) -> str:
    return "".join(LOWER[(LOWER.index(c) + 3) % 26] if c in LOWER else c for c in text)


def add_input(rng) -> str:
    return f"{number(rng, 3)}+{number(rng, 3)}"


def add_answer(text: str) -> str:
    a, b = text.split("+")
    return str(int(a) + int(b))


# name -> (input generator, answer function). "echo" is the base model's own task (no adapter).
TASKS = {
    "echo": (echo_input, lambda s: s),
    "last_word": (lambda rng: words(rng, 1, 4, 5), lambda s: s.split(" ")[-1]),
    "spell": (lambda rng: digit_string(rng, 6), lambda s: " ".join(DIGIT_WORDS[int(c)] for c in s)),
    "reverse": (lambda rng: words(rng, 1, 3, 6), lambda s: s[::-1]),
    "caesar": (lambda rng: words(rng, 1, 3, 6), caesar3),
    "upper": (lambda rng: words(rng, 1, 3, 6), lambda s: s.upper()),
    "add": (add_input, add_answer),
}

# Adapter name -> LoRA shape. Ranks, alphas and target sets differ on purpose: the demo exercises heterogeneous
# batching (rank padding, per-slot scaling, adapters touching different projections).
ADAPTERS = {
    "last_word": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_rslora=False),
    "spell": dict(r=8, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], use_rslora=False),
    "upper": dict(r=16, lora_alpha=16, target_modules=["gate_proj", "up_proj", "down_proj"], use_rslora=False),
    "caesar": dict(r=24, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], use_rslora=True),
    "reverse": dict(r=32, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], use_rslora=False),
    "add": dict(r=64, lora_alpha=64, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], use_rslora=False),
}


def sample(task: str, rng, prefixed: bool = False) -> tuple[str, str]:
    """(prompt text without BOS, answer without EOS). `prefixed` = the task name written before the input."""
    make_input, answer = TASKS[task]
    text = make_input(rng)
    prompt = (f"{task}:" if prefixed and task != "echo" else "") + text + SEPARATOR
    return prompt, answer(text)
