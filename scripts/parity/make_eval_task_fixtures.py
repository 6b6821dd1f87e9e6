#!/usr/bin/env python3
"""Expected request strings for the built-in tasks of `minipuzzle eval-tasks`, rendered the way the
lm-evaluation-harness renders them: its task configurations' templates (lm_eval/tasks/*/*.yaml,
restated below) through Jinja2 with StrictUndefined and keep_trailing_newline (the harness's
apply_template), its Python preprocessing restated from the task folders' utils, Python's own
string methods, and Python's random.Random(seed).sample for few-shot draws, one generator per
task consumed document after document.

    python3 scripts/parity/make_eval_task_fixtures.py --out tests/fixtures/eval_tasks

Writes OUT/<case>.docs.jsonl (documents in the Hugging Face datasets' layouts), OUT/<case>.pool.jsonl
(the few-shot pool, when the case has one) and OUT/<case>.expected.json (per document: the
(context, continuation) of every request and the gold index). tests/test_eval_prompts.cpp
compares minipuzzle's rendering with these.
"""
import argparse
import json
import os
import random
import re

import jinja2

ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(template, doc):
    return ENV.from_string(template).render(**doc)


# --- task configurations (facts of lm_eval/tasks) --------------------------------------------
ARC = dict(text="Question: {{question}}\nAnswer:", target="{{choices.label.index(answerKey)}}",
           choice="{{choices.text}}")
PIQA = dict(text="Question: {{goal}}\nAnswer:", choice="{{[sol1, sol2]}}")
BOOLQ = dict(text="{{passage}}\nQuestion: {{question}}?\nAnswer:", choices=["no", "yes"])
MMLU = dict(text="{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
            choices=["A", "B", "C", "D"])
LAMBADA = dict(text="{{text.split(' ')[:-1]|join(' ')}}", target="{{' '+text.split(' ')[-1]}}")


def hellaswag_clean(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag_doc(doc):
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return {"query": hellaswag_clean(doc["activity_label"] + ": " + ctx),
            "choices": [hellaswag_clean(e) for e in doc["endings"]], "gold": int(doc["label"])}


def mc_case(docs, q_of, choices_of, gold_of, description_of=lambda d: "", pool=None, shots=0, first_n=False,
            same=None, seed=1234):
    """Requests of a multiple-choice task: (description + examples + q, " " + choice)."""
    rnd = random.Random(seed)
    out = []
    for d in docs:
        examples = ""
        if shots:
            cands = [p for p in pool if same is None or p[same] == d[same]]
            picked = cands[:shots] if first_n else rnd.sample(cands, shots)
            for p in picked:
                examples += q_of(p) + " " + choices_of(p)[gold_of(p)] + "\n\n"
        ctx = description_of(d) + examples + q_of(d)
        out.append({"requests": [[ctx, " " + c] for c in choices_of(d)], "gold": gold_of(d)})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    cases = {}

    arc = [
        {"id": "Mercury_7175875", "question": "An astronomer observes that a planet rotates faster after a meteorite "
         "impact. Which is the most likely effect of this increase in rotation?",
         "choices": {"text": ["Planetary density will decrease.", "Planetary years will become longer.",
                              "Planetary days will become shorter.", "Planetary gravity will become stronger."],
                     "label": ["A", "B", "C", "D"]}, "answerKey": "C"},
        {"id": "NYSEDREGENTS_2015_4_8", "question": "Which  tool would best measure the mass of a rock? ",
         "choices": {"text": ["a balance", "a ruler", "a thermometer", "a graduated cylinder"],
                     "label": ["1", "2", "3", "4"]}, "answerKey": "1"},
        {"id": "Unicode_1", "question": "Caf\u00e9 na\u00efve \u2014 \u201cquoted\u201d: which is \u00b0C?",
         "choices": {"text": ["\u00b0C", "K\u00e9lvin", "\u65e5\u672c"], "label": ["A", "B", "C"]}, "answerKey": "B"},
    ]
    arc_pool = [
        {"id": "t1", "question": "What is the boiling point of water at sea level?",
         "choices": {"text": ["50 C", "100 C", "150 C"], "label": ["A", "B", "C"]}, "answerKey": "B"},
        {"id": "t2", "question": "Which planet is closest to the Sun?",
         "choices": {"text": ["Mercury", "Venus", "Mars", "Earth"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"},
        {"id": "t3", "question": "Plants make food by",
         "choices": {"text": ["photosynthesis", "respiration"], "label": ["A", "B"]}, "answerKey": "A"},
        {"id": "t4", "question": "A magnet attracts",
         "choices": {"text": ["wood", "iron", "glass", "paper"], "label": ["1", "2", "3", "4"]}, "answerKey": "2"},
        {"id": "t5", "question": "Ice is water in which state?",
         "choices": {"text": ["solid", "liquid", "gas"], "label": ["A", "B", "C"]}, "answerKey": "A"},
    ]
    arc_q = lambda d: render(ARC["text"], d)
    arc_c = lambda d: d["choices"]["text"]
    arc_g = lambda d: int(render(ARC["target"], d))
    cases["arc_easy"] = (arc, None, mc_case(arc, arc_q, arc_c, arc_g))
    cases["arc_easy_2shot"] = (arc, arc_pool, mc_case(arc, arc_q, arc_c, arc_g, pool=arc_pool, shots=2))
    arc_ch = [{"id": "Mercury_SC_415702", "question": "George wants to warm his hands quickly by rubbing them. Which "
               "skin surface will produce the most heat?",
               "choices": {"text": ["dry palms", "wet palms", "palms covered with oil", "palms covered with lotion",
                                    "palms covered with gloves"], "label": ["A", "B", "C", "D", "E"]},
               "answerKey": "A"}]
    cases["arc_challenge"] = (arc_ch, None, mc_case(arc_ch, arc_q, arc_c, arc_g))

    hs = [
        {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
         "ctx": "A man is sitting on a roof. he", "endings": [
             "is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
             "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
         "source_id": "activitynet~v_-JhWjGDPHMY", "split": "val", "split_type": "indomain", "label": "3"},
        {"ind": 92, "activity_label": "Home and Garden", "ctx_a": "[header] How to clean a grill [title] Heat the grill.",
         "ctx_b": "Turn the burners on HIGH for about 15 minutes. [step] This burns off residue.",
         "ctx": "", "endings": [
             "[substeps] Then  scrape the grates [title] with a brush.", " Let it cool [ half way ] down.  ",
             "Use [unclosed bracket\nand a newline] here.", "Wipe it [x]clean[y]."],
         "source_id": "wikihow~1", "split": "val", "split_type": "zeroshot", "label": "0"},
    ]
    hs_p = [hellaswag_doc(d) for d in hs]
    cases["hellaswag"] = (hs, None, mc_case(hs_p, lambda d: render("{{query}}", d), lambda d: d["choices"],
                                            lambda d: int(render("{{label}}", d) if "label" in d else d["gold"])))

    wg = [
        {"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
         "option1": "Sarah", "option2": "Maria", "answer": "1"},
        {"sentence": "The trophy doesn't fit into the brown suitcase because the _ is too large.",
         "option1": "trophy", "option2": "suitcase", "answer": "1"},
        {"sentence": "He poured water from the bottle into the cup until the _   was full. ",
         "option1": "bottle", "option2": "cup", "answer": "2"},
    ]
    wg_pool = wg[:2] + [{"sentence": "Ian volunteered to eat Dennis's menudo after already having a bowl because _ "
                         "despised eating intestine.", "option1": "Ian", "option2": "Dennis", "answer": "2"}]

    def wg_case(docs, pool, shots, seed=1234):
        rnd = random.Random(seed)
        res = []
        for d in docs:
            def parts(x):
                i = x["sentence"].index("_")
                return [x["sentence"][:i] + o for o in (x["option1"], x["option2"])], x["sentence"][i + 1:].strip(), \
                    {"1": 0, "2": 1}[x["answer"]]
            ctxs, suffix, gold = parts(d)
            prefix = ""
            if shots:
                for p in rnd.sample(pool, shots):
                    pc, ps, pg = parts(p)
                    prefix += pc[pg] + " " + ps + "\n\n"
            res.append({"requests": [[prefix + c, " " + suffix] for c in ctxs], "gold": gold})
        return res
    cases["winogrande"] = (wg, None, wg_case(wg, None, 0))
    cases["winogrande_1shot"] = (wg, wg_pool, wg_case(wg, wg_pool, 1))

    piqa = [{"goal": "When boiling butter, when it's ready, you can", "sol1": "Pour it onto a plate",
             "sol2": "Pour it into a jar", "label": 1},
            {"goal": "how do you open a jar?", "sol1": "twist the lid counter-clockwise.",
             "sol2": "twist the lid clockwise.", "label": 0}]
    cases["piqa"] = (piqa, None, mc_case(piqa, lambda d: render(PIQA["text"], d),
                                         lambda d: eval(render(PIQA["choice"], d)), lambda d: d["label"]))

    boolq = [{"question": "do iran and afghanistan speak the same language",
              "passage": "Persian language -- Persian, also known by its endonym Farsi, is one of the Western Iranian "
              "languages within the Indo-Iranian branch of the Indo-European language family.", "idx": 0, "label": 1},
             {"question": "is the sun a star", "passage": "The Sun is the star at the center of the Solar System.",
              "idx": 1, "label": 0}]
    cases["boolq"] = (boolq, None, mc_case(boolq, lambda d: render(BOOLQ["text"], d), lambda d: BOOLQ["choices"],
                                           lambda d: d["label"]))

    mmlu = [
        {"question": "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.  ", "subject": "abstract_algebra",
         "choices": ["0", "1", "2", "3"], "answer": 1},
        {"question": "\nWhat is the embryological origin of the hyoid bone?", "subject": "anatomy",
         "choices": ["The first pharyngeal arch", "The first and second pharyngeal arches",
                     "The second pharyngeal arch", "The second and third pharyngeal arches"], "answer": 3},
    ]
    mmlu_dev = [
        {"question": "Find the characteristic of the ring 2Z.", "subject": "abstract_algebra",
         "choices": ["0", "3", "12", "30"], "answer": 0},
        {"question": "What is the joint that allows nodding?", "subject": "anatomy",
         "choices": ["Atlanto-occipital", "Atlanto-axial", "Elbow", "Knee"], "answer": 0},
        {"question": "Statement 1 | Every group of order 4 is cyclic.", "subject": "abstract_algebra",
         "choices": ["True, True", "False, False", "True, False", "False, True"], "answer": 1},
        {"question": "Which nerve supplies the diaphragm?", "subject": "anatomy",
         "choices": ["Vagus", "Phrenic", "Ulnar", "Radial"], "answer": 1},
        {"question": "Find the order of 5 in Z_12.", "subject": "abstract_algebra",
         "choices": ["2", "4", "6", "12"], "answer": 3},
    ]
    desc = lambda d: f"The following are multiple choice questions (with answers) about {' '.join(d['subject'].split('_'))}.\n\n"
    mq = lambda d: render(MMLU["text"], d)
    cases["mmlu"] = (mmlu, None, mc_case(mmlu, mq, lambda d: MMLU["choices"], lambda d: d["answer"], desc))
    cases["mmlu_2shot"] = (mmlu, mmlu_dev, mc_case(mmlu, mq, lambda d: MMLU["choices"], lambda d: d["answer"], desc,
                                                   pool=mmlu_dev, shots=2, first_n=True, same="subject"))

    lam = [{"text": "In my palm is a clear stone, and inside it is a small ivory statuette. A guardian angel.\n\n"
            "\"Figured if you're going to be out at night getting hit by cars, you might as well have some backup.\"\n\n"
            "I look at him, feeling stunned. Like this is some sort of sign. But as I stare at Harlin, his mouth curved "
            "in a confident grin, I don't care about signs"},
           {"text": "Give me a minute to change and I'll meet you at the docks.\" She'd forced those words through "
            "her teeth.\n\"No need to change. We won't be that long.\"\nShane gripped her arm and started leading her "
            "to the dock"},
           {"text": "The end  of a double  spaced  sentence"}]

    def lam_case(docs, shots, seed=1234):
        rnd = random.Random(seed)
        res = []
        for d in docs:
            prefix = ""
            if shots:
                # The pool is the evaluated file itself: draw one more and drop the document.
                picked = [p for p in rnd.sample(docs, shots + 1) if p != d][:shots]
                for p in picked:
                    prefix += render(LAMBADA["text"], p) + " " + render(LAMBADA["target"], p) + "\n\n"
            res.append({"requests": [[prefix + render(LAMBADA["text"], d), render(LAMBADA["target"], d)]], "gold": -1})
        return res
    cases["lambada_openai"] = (lam, None, lam_case(lam, 0))
    cases["lambada_openai_1shot_self"] = (lam, None, lam_case(lam, 1))

    ppl = [{"text": "  Leading spaces and\ttabs\nnew lines  "}, {"text": "one"}]
    cases["perplexity"] = (ppl, None, [{"requests": [["", d["text"]]], "gold": -1,
                                        "words": len(re.split(r"\s+", d["text"])),
                                        "bytes": len(d["text"].encode("utf-8"))} for d in ppl])

    for name, (docs, pool, expected) in cases.items():
        with open(os.path.join(out, name + ".docs.jsonl"), "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        if pool is not None:
            with open(os.path.join(out, name + ".pool.jsonl"), "w", encoding="utf-8") as f:
                for d in pool:
                    f.write(json.dumps(d, ensure_ascii=False) + "\n")
        with open(os.path.join(out, name + ".expected.json"), "w", encoding="utf-8") as f:
            json.dump(expected, f, ensure_ascii=False, indent=1)
            f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
