"""Rules of the prompt-injection detector for paraphrases: other verbs for dropping the rules,
hypothetical and named jailbreak personas, and indirect ways to ask for the system prompt.

Each also has a pre-check (its key words), like the rules in rules.py and broad_rules.py.
"""

from __future__ import annotations

from gateway.guards.injection.rule import (
    AI,
    EXTRACTION,
    OVERRIDE,
    ROLEPLAY,
    Rule,
    rule,
    word_set,
)

_MODEL_TEXT_NOUN = (
    r"(?:instructions|rules|guidelines|directives|prompt|system message|system prompt"
    r"|configuration|programming|preprompt)"
)
_MODEL_TEXT_KEYS = word_set(
    "instructions rules guidelines directives prompt message configuration programming preprompt"
)

PARAPHRASE_RULES: tuple[Rule, ...] = (
    # Dropping the rules, other verbs.
    rule(
        "cancel_prior_instructions",
        OVERRIDE,
        0.8,
        r"(?:cancel|reset|clear|wipe|delete|erase|void|nullify|revoke|unlearn|purge|flush)"
        r" (?:all |any |every )?(?:of )?(?:your |the |my )?(?:(?:previous|prior|earlier|above"
        r"|original|initial|existing|current|old|system) )?(?:instructions|directives|commands"
        r"|guidelines|programming|system prompt|prompts|rules|constraints|restrictions)"
        r"(?: (?:and|then|,|;|\.)| (?:you|above|so far)|$)",
        keys=(
            "cancel reset clear wipe delete erase void nullify revoke unlearn purge flush",
            "instructions directives commands guidelines programming prompt prompts rules"
            " constraints restrictions",
        ),
    ),
    rule(
        "regardless_of_your_rules",
        OVERRIDE,
        0.7,
        r"(?:regardless of|irrespective of|in spite of|despite|notwithstanding|contrary to"
        r"|the opposite of what|above|over|instead of) (?:all |any )?(?:of )?(?:your |the system's"
        r" |the model's )(?:\w+ )?(?:rules|instructions|guidelines|policies|programming"
        r"|restrictions|filters|training|safety|ethics|directives|system prompt)",
        keys=(
            "regardless irrespective spite despite notwithstanding contrary opposite above over"
            " instead",
            "your system model",
        ),
    ),
    rule(
        "ignore_ethics",
        OVERRIDE,
        0.75,
        r"(?:ignore|disregard|forget|set aside|put aside|drop|abandon|bypass|skip|suspend|discard"
        r"|override) (?:all |any |your )?(?:of )?(?:your )?(?:\w+ ){0,3}?(?:ethics|ethical"
        r" (?:considerations|concerns|principles|boundaries|guidelines|constraints)|morals|morality"
        r"|moral (?:considerations|principles|compass|constraints)|content polic(?:y|ies)"
        r"|safety (?:concerns|considerations|protocols|guidelines|training)|censorship|filters)",
        keys=(
            "ignore disregard forget aside drop abandon bypass skip suspend discard override",
            "ethics ethical morals morality moral policy policies safety censorship filters",
        ),
    ),
    rule(
        "you_dont_care_about_ethics",
        ROLEPLAY,
        0.6,
        r"you (?:don't|do not|no longer|never|won't|will not) (?:\w+ )?(?:care|worry) (?:about"
        r"|for) (?:\w+ )?(?:ethics|morals|morality|legality|laws?|rules|safety|consequences"
        r"|guidelines|policies|restrictions)",
        keys=("care worry", "you"),
    ),
    rule(
        "no_rules_anymore",
        ROLEPLAY,
        0.5,
        r"there (?:are|is) no (?:more |longer any )?(?:rules|restrictions|limits|filters"
        r"|guidelines|censorship|boundaries)"
        r" (?:anymore|any more|now|here|for you|in this (?:chat|conversation))",
        keys=("rules restrictions limits filters guidelines censorship boundaries", "there"),
    ),
    rule(
        "no_warnings",
        ROLEPLAY,
        0.3,
        r"(?:no|without|never (?:include|add)|don't (?:include|add)|do not (?:include|add))"
        r" (?:any )?(?:warnings|disclaimers|caveats|moralizing|moralising|lectures|limits)",
        keys=("warnings disclaimers caveats moralizing moralising lectures limits",),
    ),
    # Personas: hypothetical, evil, named.
    rule(
        "if_you_had_no_rules",
        ROLEPLAY,
        0.6,
        r"(?:if|what if|hypothetically|in a world where|suppose|assuming) (?:\w+ )?you (?:had|have"
        r"|were|are|weren't|were not) (?:no|without|free (?:of|from)|not bound by|unbound by)"
        r" (?:any |your )?(?:\w+ )?(?:content polic(?:y|ies)|restrictions|filters|guidelines"
        r"|guardrails|safety (?:rules|training|filters)|ethical (?:rules|guidelines|constraints)"
        r"|censorship|programming)",
        keys=(
            "if hypothetically world suppose assuming",
            "policy policies restrictions filters guidelines guardrails safety ethical censorship"
            " programming",
        ),
    ),
    rule(
        "as_an_evil_ai",
        ROLEPLAY,
        0.7,
        r"(?:as|be|become|like|simulate|emulate|impersonate|play) (?:an? |the )?(?:evil|rogue"
        r"|malicious|unethical|unhinged|rebellious|immoral|lawless|sinister)"
        rf" (?:\w+ )?(?:{AI}|version of (?:yourself|you|chatgpt|the ai))",
        keys=("evil rogue malicious unethical unhinged rebellious immoral lawless sinister",),
    ),
    rule(
        "named_jailbreak_persona",
        ROLEPLAY,
        0.7,
        r"(?:you are|you're|act as|become|roleplay as|pretend to be|play|respond as|answer as)"
        r" (?:now )?(?:an? )?(?:stan|dude|aim|mongo tom|betterdan|antigpt|ucar|evil confidant"
        r"|basedgpt|apophis|kevin gpt|machiavelli(?:an)? (?:ai|chatbot|bot))(?![a-z])"
        r"|always intelligent and machiavellian|strive to avoid norms",
        keys=(
            "stan dude aim mongo betterdan antigpt ucar confidant basedgpt apophis kevin"
            " machiavelli machiavellian norms",
        ),
    ),
    rule(
        "persona_who_breaks_rules",
        ROLEPLAY,
        0.6,
        rf"(?:{AI}s?|you are \w+,?(?: an?)?(?: \w+)?) (?:who|that|which) (?:\w+ )?"
        r"(?:doesn't|does not|never|won't|will not|refuses to|can't"
        r"|cannot) (?:follow|obey|care about|respect|have|abide by) (?:any |the )?(?:\w+ )?"
        r"(?:rules|restrictions|guidelines|filters|limits|morals|ethics|policies|boundaries)"
        r"|(?:break|breaks|broke|breaking) (?:free )?(?:of |from )?(?:all )?(?:of )?(?:its|your"
        r"|their) (?:own )?(?:rules|restrictions|programming|chains|guidelines|constraints"
        r"|shackles|filters)",
        keys=(
            "rules restrictions guidelines filters limits morals ethics policies boundaries"
            " programming chains constraints shackles",
            "follow obey care respect have abide break breaks broke breaking",
        ),
    ),
    rule(
        "you_can_do_anything",
        ROLEPLAY,
        0.4,
        r"you (?:can|may|are (?:allowed|free|able) to) (?:now )?(?:do|say|answer|write|generate)"
        r" (?:absolutely )?anything(?! (?:else|about))"
        r"|you are not an? (?:ai|assistant|language model|chatbot)",
        keys=("you", "anything not"),
    ),
    # System prompt extraction, asked sideways.
    rule(
        "rework_your_instructions",
        EXTRACTION,
        0.65,
        r"(?:summari[sz]e|paraphrase|restate|reword|translate|encode|convert|rewrite|reproduce"
        r"|divulge|expose|base64) (?:me )?(?:all )?(?:of )?your (?:\w+ )?" + _MODEL_TEXT_NOUN,
        keys=(
            "summarize summarise paraphrase restate reword translate encode convert rewrite"
            " reproduce divulge expose base",
            "your",
            _MODEL_TEXT_KEYS,
        ),
    ),
    rule(
        "part_of_your_prompt",
        EXTRACTION,
        0.7,
        r"(?:first|last|opening|beginning|initial|top) (?:\d+ |few |hundred )?(?:line|sentence"
        r"|word|paragraph|character|token|part|section)s? of (?:your|the) (?:\w+ )?(?:prompt"
        r"|instructions|system message|context window|preprompt)",
        keys=(
            "first last opening beginning initial top",
            "prompt instructions message context preprompt",
        ),
    ),
    rule(
        "what_your_prompt_is",
        EXTRACTION,
        0.55,
        r"(?:what|how) your (?:\w+ )?(?:prompt|instructions|system message|preprompt)"
        r" (?:is|are|says?|were|reads?|looks? like)",
        keys=("what how", "your", "prompt instructions message preprompt"),
    ),
    rule(
        "told_not_to_reveal",
        EXTRACTION,
        0.6,
        r"you (?:were|have been|'ve been|are|got) (?:\w+ )?(?:told|instructed|asked|programmed"
        r"|ordered|configured) (?:not to|never to|to never"
        r"|to keep (?:\w+ )?(?:secret|hidden|private))"
        r"(?: (?:reveal|share|tell|say|disclose|mention|repeat|show))?",
        keys=("you", "told instructed asked programmed ordered configured"),
    ),
    rule(
        "conversation_from_the_start",
        EXTRACTION,
        0.55,
        r"(?:repeat|print|output|show|reveal|display|dump|copy|recite|give me|list)"
        r" (?:me )?(?:the |our |this |your )?(?:entire |whole |full |complete )?(?:conversation"
        r"|chat|context|transcript|context window|message history)"
        r" (?:from|since) the (?:very )?(?:start|beginning|top|first message)"
        r"|including the (?:system|hidden|developer|initial) (?:part|message|prompt|instructions"
        r"|section)",
        keys=(
            "conversation chat context transcript history including",
            "start beginning top first system hidden developer initial",
        ),
    ),
    # Text planted for a model to act on behind the user's back.
    rule(
        "hide_it_from_the_user",
        OVERRIDE,
        0.6,
        r"(?:do not|don't|never) (?:tell|inform|mention|reveal|show|let) (?:the user|the human"
        r"|anyone|them)(?: \w+){0,4}? (?:this|these) (?:instructions?|message|note|text|comment"
        r"|directive)"
        r"|without (?:telling|informing|alerting|notifying|letting) (?:the user|the human)"
        r"|(?:do not|don't|never) (?:mention|reveal|disclose) (?:this|these) (?:instructions?|note"
        r"|message|directive) to (?:the user|the human|anyone)",
        keys=("tell inform mention reveal show let telling informing alerting notifying letting",),
    ),
)
