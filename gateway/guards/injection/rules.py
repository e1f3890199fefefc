"""The core rule table of the heuristic prompt-injection detector (see heuristics.py): rules
written against known attacks. The rule type and the shared vocabulary are in rule.py.
"""

from __future__ import annotations

from gateway.guards.injection.rule import (
    AI,
    AI_KEYS,
    EARLIER,
    EXTRACTION,
    IGNORE,
    IGNORE_KEYS,
    LIMIT_KEYS,
    NOUN_KEYS,
    OVERRIDE,
    REVEAL,
    REVEAL_KEYS,
    ROLEPLAY,
    RULES_NOUN,
    Rule,
    rule,
    word_set,
)

RULES: tuple[Rule, ...] = (
    # Instruction override.
    rule(
        "ignore_previous_instructions",
        OVERRIDE,
        0.9,
        rf"{IGNORE} (?:all |any |every )?(?:of )?(?:the |your |my |these |those |this )?"
        rf"(?:{EARLIER} )?(?:\w+ )?{RULES_NOUN}",
        keys=(IGNORE_KEYS, NOUN_KEYS),
    ),
    rule(
        "ignore_everything_before",
        OVERRIDE,
        0.85,
        rf"{IGNORE} (?:about )?(?:everything|anything|all|what) (?:\w+ ){{0,3}}?"
        r"(?:above|before|previously|so far|earlier|you (?:were|have been|'ve been)"
        r" (?:told|given|instructed|taught))",
        keys=(
            IGNORE_KEYS,
            "everything anything all what",
            "above before previously far earlier told given instructed taught",
        ),
    ),
    rule(
        "ignore_the_above",
        OVERRIDE,
        0.75,
        rf"{IGNORE} (?:all )?(?:of )?(?:the )?(?:above|previous|prior|preceding)"
        r"(?=\s*(?:[.,;:!]|and\s|then\s|$))",
        keys=(IGNORE_KEYS, "above previous prior preceding"),
    ),
    rule(
        "do_not_follow_instructions",
        OVERRIDE,
        0.85,
        r"(?:do not|don't|dont|stop|no longer|never)"
        r" (?:follow|obey|adhere to|comply with|listen to)"
        rf" (?:any |the |your )?(?:{EARLIER} )?{RULES_NOUN}",
        keys=("follow obey adhere comply listen", NOUN_KEYS),
    ),
    rule(
        "disable_safety",
        OVERRIDE,
        0.85,
        r"(?:disable|turn off|deactivate|remove|bypass|circumvent|switch off|get around|lift"
        r"|override) (?:all |any |your |the )*(?:(?:safety|content|ethical|moral)? ?"
        r"(?:filters?|guardrails|safeguards|restrictions|limitations|censorship|safety)"
        r"|(?:safety|content) (?:settings|protocols|policy|policies|mode))",
        keys=(
            ("disable turn deactivate remove bypass circumvent switch get lift override"),
            (
                "filter filters guardrails safeguards restrictions limitations"
                " censorship safety settings protocols policy policies mode"
            ),
        ),
    ),
    rule(
        "rules_are_void",
        OVERRIDE,
        0.8,
        rf"(?:your |all |the )?(?:{EARLIER} )?{RULES_NOUN}"
        r" (?:no longer apply|(?:are|is|have been)"
        r" (?:now )?(?:void|cancell?ed|revoked|null|lifted|suspended|outdated|overridden)"
        r"|(?:don't|do not) (?:apply|matter) (?:anymore|any more|now))",
        keys=(
            NOUN_KEYS,
            (
                "longer void cancelled canceled revoked null lifted suspended"
                " outdated overridden apply matter"
            ),
        ),
    ),
    rule(
        "obey_user_over_system",
        OVERRIDE,
        0.8,
        r"(?:obey|follow|prioriti[sz]e|listen to)"
        r" (?:the user|me|my (?:instructions|orders|commands))"
        r" (?:over|instead of|rather than|above) (?:the |your )?(?:system|developer|original"
        r"|previous|operator)",
        keys=("obey follow prioritize prioritise listen", "over instead rather above"),
    ),
    rule(
        "must_comply_with_everything",
        OVERRIDE,
        0.6,
        r"(?:you|the assistant|the ai|the model) (?:must|will|shall) (?:now )?(?:comply with|obey"
        r"|follow|fulfil+|answer) (?:every|all|any) (?:user )?(?:requests?|commands|instructions"
        r"|questions?)",
        keys=("comply obey follow fulfil fulfill answer", "every all any", "must will shall"),
    ),
    rule(
        "ignore_the_user",
        OVERRIDE,
        0.75,
        rf"{IGNORE} (?:what )?(?:the user|the user's|the human|the customer)"
        r"(?: \w+)? (?:asked|question|request|says|said|wants|message)",
        keys=(IGNORE_KEYS, "user human customer"),
    ),
    rule(
        "never_refuse",
        ROLEPLAY,
        0.4,
        r"(?:never|not|don't|do not|without) (?:ever )?refus(?:e|es|ed|ing|al|als)",
        keys=("refuse refuses refused refusing refusal refusals",),
    ),
    rule(
        "new_instructions",
        OVERRIDE,
        0.55,
        r"(?:new|updated|real|actual|revised|true) (?:instructions?|rules|task|directives?|orders)"
        r"(?: for you)?(?: (?:are|is))? ?:|your (?:new|real|actual|true) (?:instructions|task|goal"
        r"|purpose|role|directive|objective) (?:is|are|will be)",
        keys=(
            (
                "instruction instructions rules task directive directives orders"
                " goal purpose role objective"
            ),
            "new updated real actual revised true",
        ),
    ),
    rule(
        "from_now_on",
        OVERRIDE,
        0.35,
        r"from now on,? you (?:will|must|are|shall|should|only)|for the rest of this conversation,?"
        r" you (?:will|must|are)",
        keys=("now conversation", "you"),
    ),
    rule(
        "chat_template_tokens",
        OVERRIDE,
        0.7,
        r"<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|start_header_id\|>|<\|begin_of_text\|>"
        r"|<<sys>>|\[/?inst\]|<\|endoftext\|>|<\|eot_id\|>",
        keys=(),
    ),
    rule(
        "fake_system_message",
        OVERRIDE,
        0.55,
        r"(?:^|\n) *(?:(?:\[|<|#+ ?)(?:system|admin|administrator|developer|root)"
        r"(?: message| prompt| override| instruction| note| notice)?"
        # Bare "Admin:" or "Developer:" starts ordinary notes; bare "System:" is a fake turn.
        r"|system(?: message| prompt| override| instruction| note| notice)?"
        r"|(?:admin|administrator|developer|root) (?:message|prompt|override|instruction))"
        r"(?:\]|>)? ?:"
        r"|\[(?:system|admin) (?:override|message|instruction)\]"
        r"|(?:^|\n) *\[(?:system|admin|developer)\]",
        keys=("system admin administrator developer root",),
    ),
    rule(
        "addressed_to_the_ai",
        OVERRIDE,
        0.5,
        rf"(?:note|message|instructions?|attention|hidden text) (?:to|for) (?:the |all |any )?"
        rf"{AI}s?(?: \w+){{0,3}} ?:|(?:attention|dear|hey|hello) {AI}s? ?[:,]"
        rf"|if you are an? {AI} (?:\w+ )?(?:reading|processing|summari[sz]ing) this"
        rf"|{AI}s? (?:\w+ )?(?:reading|processing|summari[sz]ing) this (?:\w+ )?(?:must|should)",
        keys=(
            AI_KEYS,
            (
                "note message instruction instructions attention hidden dear hey"
                " hello if reading processing summarizing summarising"
            ),
        ),
    ),
    rule(
        "hidden_comment_to_the_ai",
        OVERRIDE,
        0.6,
        rf"<!-- ?(?:{AI}|system|admin|instructions?)",
        keys=(),
    ),
    rule(
        "exfiltrate_data",
        OVERRIDE,
        0.6,
        r"(?:send|forward|email|post|upload|transmit|exfiltrate) (?:the |all |this |your |my )?"
        r"(?:entire |whole |full )?(?:conversation|chat history|chat log|system prompt"
        r"|user'?s? (?:\w+ )?(?:data|information|credentials|emails|messages|passwords?)"
        r"|api keys?)"
        r" (?:to|at) ",
        keys=(
            "send forward email post upload transmit exfiltrate",
            (
                "conversation history log prompt data information credentials"
                " emails messages password passwords api key keys"
            ),
        ),
    ),
    rule(
        "decode_and_obey",
        OVERRIDE,
        0.6,
        r"(?:decode|decrypt|translate|reverse) (?:this|the following|it|the text)"
        r"(?: \w+){0,4} (?:and|then) (?:follow|obey|execute|do|run|carry out) ",
        keys=("decode decrypt translate reverse", "follow obey execute do run carry"),
    ),
    # Role play and jailbreak personas.
    rule(
        "do_anything_now",
        ROLEPLAY,
        0.85,
        r"do anything now|dan mode|dan jailbreak",
        keys=("anything dan", "now mode jailbreak"),
    ),
    rule(
        "you_are_dan",
        ROLEPLAY,
        0.75,
        r"(?:you are|you're|act as|pretend to be|roleplay as|become) (?:now )?(?:a )?dan",
        keys=("dan",),
    ),
    rule(
        "special_mode_on",
        ROLEPLAY,
        0.75,
        r"(?:developer|jailbreak|jailbroken|unrestricted|unfiltered|god|dan|evil|opposite)"
        r" mode (?:is )?(?:now )?(?:enabled|activated|engaged|on(?=\s*(?:[.,;:!)\]]|$)))"
        r"|(?:you are|you're) (?:now )?in (?:developer|jailbreak|unrestricted|god|dan) mode"
        r"|(?:enable|activate|enter|switch to) (?:jailbreak|jailbroken|unrestricted|unfiltered"
        r"|uncensored|dan) mode",
        keys=(
            "mode",
            (
                "developer jailbreak jailbroken unrestricted unfiltered god dan"
                " evil opposite uncensored"
            ),
        ),
    ),
    rule(
        "enable_developer_mode",
        ROLEPLAY,
        0.4,
        r"(?:enable|activate|enter|switch to|turn on) (?:the )?(?:developer|dev|god|debug|sudo)"
        r" mode",
        keys=("mode", "developer dev god debug sudo", "enable activate enter switch turn"),
    ),
    rule(
        "pretend_no_restrictions",
        ROLEPLAY,
        0.85,
        r"(?:pretend|imagine|act as if|assume|suppose|behave as if) (?:that )?you (?:have|had|are"
        r"|were) (?:no|not bound by|free (?:of|from)|without|unbound by|released from|exempt from)"
        r" (?:any |all |your |the )?(?:\w+ )?(?:restrictions|rules|limits|limitations|filters"
        r"|guidelines|ethics|morals|policies|programming|constraints|censorship)",
        keys=("pretend imagine act assume suppose behave", LIMIT_KEYS),
    ),
    rule(
        "you_without_limits",
        ROLEPLAY,
        0.7,
        r"you (?:are|were|have|had|'re) (?:now )?(?:an? (?:\w+ )?)?(?:with no|without any|without"
        r"|free (?:of|from)|not bound by|unbound by|released from) (?:\w+ ){0,2}?(?:restrictions"
        r"|rules|limits|limitations|filters|guidelines|ethics|morals|policies|programming"
        r"|constraints|censorship|safety training|alignment)",
        keys=(LIMIT_KEYS | word_set("training alignment"), "you"),
    ),
    rule(
        "deceased_relative",
        ROLEPLAY,
        0.55,
        r"(?:act|pretend|roleplay|play) (?:to be |as )?my (?:late|deceased|dead) \w+ who",
        keys=("late deceased dead", "my"),
    ),
    rule(
        "without_restrictions",
        ROLEPLAY,
        0.5,
        r"(?:no|without|free from|unbound by|not bound by|ignoring) (?:any |all )?(?:moral |ethical"
        r" |content |safety )?(?:restrictions|limitations|filters|censorship|guidelines|rules"
        r"|constraints|policies) (?:whatsoever|at all|of any kind|anymore|apply)",
        keys=(LIMIT_KEYS, "whatsoever all kind anymore apply"),
    ),
    rule(
        "unrestricted_persona",
        ROLEPLAY,
        0.75,
        r"(?:act as|you are|you're|become|play|pretend to be|roleplay as) (?:now )?(?:an? )?"
        r"(?:unrestricted|unfiltered|uncensored|jailbroken|evil|amoral|unethical|rogue|unaligned)"
        rf" (?:version of (?:yourself|chatgpt|the ai)|{AI}|persona|character)",
        keys=(
            ("unrestricted unfiltered uncensored jailbroken evil amoral unethical rogue unaligned"),
        ),
    ),
    rule(
        "no_longer_an_ai",
        ROLEPLAY,
        0.6,
        r"(?:you are|you're) no longer (?:an? )?(?:ai|assistant|chatgpt|claude|gemini|gpt"
        r"|language model|bound|restricted|limited|required)"
        r"|(?:don't|do not|doesn't|does not|no longer|never) (?:have|has|need|needs|must) (?:to )?"
        r"(?:follow|obey|abide by|respect) (?:any |the |your )?(?:rules|guidelines|policies"
        r"|restrictions|content policy|openai'?s? polic)",
        keys=("longer follow obey abide respect",),
    ),
    rule(
        "you_are_now",
        ROLEPLAY,
        0.3,
        r"you are now|you're now|you will now act as",
        keys=("now", "you"),
    ),
    rule(
        "stay_in_character",
        ROLEPLAY,
        0.3,
        r"stay in character|never break character|do not break character|don't break character",
        keys=("character",),
    ),
    rule(
        "jailbreak_tag",
        ROLEPLAY,
        0.6,
        r"\[\W{0,3}jailbreak\W{0,3}\]|\[\W{0,3}classic\W{0,3}\]|jailbroken response",
        keys=("jailbreak classic jailbroken",),
    ),
    rule(
        "claims_authority",
        ROLEPLAY,
        0.5,
        r"i am (?:your|the) (?:developer|creator|administrator|admin|owner|programmer|operator)"
        r"|this is (?:an? )?(?:\w+ )?(?:message|instruction|test|override) from (?:the |your )?"
        r"(?:developers?|admins?|administrators?|openai|anthropic|system|creators?)",
        keys=(
            (
                "developer creator administrator admin owner programmer operator"
                " developers admins administrators openai anthropic system creators"
            ),
        ),
    ),
    # System prompt extraction.
    rule(
        "reveal_system_prompt",
        EXTRACTION,
        0.8,
        rf"(?:{REVEAL}|what (?:is|are|was|were)|what's) (?:me |us )?(?:what )?(?:all |back )?"
        r"(?:your|the) (?:full |exact |entire |complete |original |hidden |secret |initial )*"
        r"(?:system|initial|hidden|secret|internal|developer|original|pre|base|starting)"
        r"(?: prompt| instructions| message| rules| configuration| directives| guidelines)",
        keys=(
            REVEAL_KEYS | word_set("what whats"),
            (
                "system initial hidden secret internal developer original pre"
                " preprompt base starting"
            ),
            ("prompt instructions message rules configuration directives guidelines preprompt"),
        ),
    ),
    rule(
        "repeat_text_above",
        EXTRACTION,
        0.8,
        rf"{REVEAL} (?:me |us )?(?:back )?(?:all |the |your |every |of )*(?:\w+ )?"
        r"(?:text|words|content|everything|instructions|prompt|messages?|lines|tokens|sentences)"
        r" (?:(?:that )?(?:appears? |appeared |came |comes |is |was |written "
        r"|you (?:were|have been) given )?(?:above|before|preceding|prior to)|so far"
        r"|at the (?:start|beginning|top)"
        r"|you (?:were|have been) given)",
        keys=(
            REVEAL_KEYS,
            (
                "text words content everything instructions prompt message messages"
                " lines tokens sentences"
            ),
            "above before preceding prior far start beginning top given",
        ),
    ),
    rule(
        "first_words_of_your_prompt",
        EXTRACTION,
        0.75,
        r"(?:first|last|opening) (?:\d+ |few |hundred )?(?:words|lines|sentences|characters"
        r"|tokens|paragraphs?) of (?:your|the) (?:system |initial |original |hidden )?"
        r"(?:prompt|instructions)",
        keys=("first last opening", "prompt instructions"),
    ),
    rule(
        "instructions_you_were_given",
        EXTRACTION,
        0.55,
        r"(?:instructions|rules|guidelines|directives|prompt|orders)(?: that)?"
        r" (?:you were|you've been|you have been|were you|have you been|you got|you received)"
        r" (?:given|told|provided"
        r"|configured|set up)?"
        r"|what (?:the |your )?(?:operator|developers?|deployers?|company|admins?|creators?)"
        r" (?:told|instructed|asked) you",
        keys=(
            ("instructions rules guidelines directives prompt orders told instructed asked"),
            "you",
        ),
    ),
    rule(
        "mentions_your_system_prompt",
        EXTRACTION,
        0.45,
        r"your (?:system|hidden|secret|initial|internal|original) (?:prompt|instructions|message)",
        keys=(
            "your",
            "system hidden secret initial internal original",
            "prompt instructions message",
        ),
    ),
    rule(
        "verbatim",
        EXTRACTION,
        0.3,
        r"(?:quote|repeat|copy|reproduce) (?:it|them|that|this)?"
        r" ?(?:exactly|verbatim|word for word)"
        r"|verbatim",
        keys=("verbatim exactly word",),
    ),
    rule(
        "print_your_instructions",
        EXTRACTION,
        0.7,
        rf"{REVEAL} (?:me |us )?(?:all |back )?your (?:instructions|rules|guidelines|directives"
        r"|prompt|configuration|programming)",
        keys=(
            REVEAL_KEYS,
            "your",
            ("instructions rules guidelines directives prompt configuration programming"),
        ),
    ),
    rule(
        "what_are_your_instructions",
        EXTRACTION,
        0.45,
        r"what (?:are|were) your (?:\w+ )?(?:instructions|rules|guidelines|directives)"
        r"|how (?:were|are) you (?:instructed|programmed|prompted)",
        keys=(
            "what how",
            ("instructions rules guidelines directives instructed programmed prompted"),
        ),
    ),
    rule(
        "starting_with_you_are",
        EXTRACTION,
        0.5,
        r"(?:beginning|starting|that starts?|which starts?) with (?:the (?:words?|phrase) )?"
        r"\W?you are",
        keys=("beginning starting starts start", "you"),
    ),
)
