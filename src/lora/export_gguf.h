/* export_gguf.h - write a LoRA adapter as a llama.cpp LoRA GGUF, the file
 * `llama-cli -m BASE.gguf --lora FILE.gguf` (and llama-export-lora) load.
 *
 * What is written (llama.cpp's convert_lora_to_gguf.py does the same):
 *   general.architecture  the base's llama.cpp architecture: "llama" (llama,
 *                         mistral), "qwen2", "gpt2"
 *   general.type          "adapter"
 *   adapter.type          "lora"
 *   adapter.lora.alpha    float32: scale * r, so that llama.cpp's per-tensor
 *                         scale alpha / rank(lora_b) equals lorac's scale
 *                         (alpha/r, or alpha/sqrt(r) with rsLoRA: folded in)
 *   "<base>.weight.lora_a"  A, row-major [rank, in]  (GGUF ne = [in, rank])
 *   "<base>.weight.lora_b"  B, row-major [out, rank] (GGUF ne = [rank, out])
 * with <base> llama.cpp's tensor name ("blk.3.attn_q", "output"), and
 * llama.cpp applying W' x = W x + (alpha/rank) B (A x).
 *
 * Layout conversions:
 *  - Llama q_proj / k_proj: llama.cpp keeps q/k rows of each head in
 *    interleaved RoPE order (convert_hf_to_gguf.py's LlamaModel.permute), so
 *    the rows of B are permuted the same way; A is unchanged (B A's rows are
 *    B's rows). Qwen2 is not permuted (llama.cpp runs it with NeoX RoPE).
 *  - GPT-2 Conv1D modules: PEFT (and lorac) keep A [r, in], B [out, r] in the
 *    nn.Linear convention even with fan_in_fan_out, and llama.cpp's GPT-2
 *    matrices are [out, in] (ne = [in, out]): A and B are written as they are.
 *  - lorac's split q|k|v adapter on GPT-2's fused c_attn (parts = 3, one rank-r
 *    pair per block) becomes one rank 3r pair on blk.N.attn_qkv: A stacked
 *    [3r, in], B block-diagonal [3C, 3r]. Since llama.cpp divides by the
 *    tensor's own rank (3r) while alpha is shared by the file, that B is
 *    multiplied by 3 so the applied delta stays scale * B_p A_p per block.
 *
 * Refused (LORAC_ERR_UNSUPPORTED, one line naming the module and a hint):
 * encoders (BERT family: llama.cpp's --lora is for decoder LMs), a
 * classification head or LoRA on it, modules_to_save and any other trained
 * base tensor (biases: llama.cpp's LoRA files hold only lora_a/lora_b pairs),
 * LoRA on a tied lm_head (llama.cpp has no output.weight of its own then; an
 * untied lm_head is exported as output.weight.lora_a/_b). */
#ifndef LORAC_LORA_EXPORT_GGUF_H
#define LORAC_LORA_EXPORT_GGUF_H

#include "models/model.h"

typedef struct lorac_gguf_export_info {
    char arch[32];    /* general.architecture written */
    int n_modules;    /* adapted modules (lora_a/lora_b pairs) */
    int n_tensors;    /* 2 * n_modules */
    int n_fused;      /* split q|k|v modules written as one rank parts*r pair */
    int r;            /* lorac's rank */
    float alpha;      /* adapter.lora.alpha written */
    uint64_t bytes;   /* file size */
} lorac_gguf_export_info;

/* Write the adapters currently on m (loaded with lorac_adapter_load, or just
 * trained) to `path` atomically. dtype: LORAC_F32 or LORAC_F16. info may be
 * NULL. Nothing is written when the model cannot be exported. */
lorac_status lorac_export_gguf_model(const lorac_model *m, const char *path, lorac_dtype dtype,
                                     lorac_gguf_export_info *info);

/* Apply the PEFT adapter directory adapter_dir to the base m (which must not
 * carry adapters yet) and export it. Configs llama.cpp cannot hold
 * (modules_to_save, a classification head, an encoder base) are refused
 * before the tensors are read. */
lorac_status lorac_export_gguf(lorac_model *m, const char *adapter_dir, const char *path, lorac_dtype dtype,
                               lorac_gguf_export_info *info);

/* llama.cpp's tensor name for a Linear module of m ("model.layers.3.self_attn.q_proj"
 * -> "blk.3.attn_q.weight", "lm_head" -> "output.weight"); 0 if it has none. */
int lorac_gguf_linear_name(const lorac_model *m, const char *module, char *out, size_t n);

#endif
